//! Which address a request really came from. The socket's peer address, unless the peer is one of
//! the configured trusted proxies: then `X-Forwarded-For` is read from the right, skipping every
//! trusted hop, and the first address that is not a trusted proxy is the client. A client can put
//! anything into the header, so nothing it contains is believed beyond the last trusted hop.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IP address or CIDR network")]
pub struct BadProxy(String);

/// The proxies whose `X-Forwarded-For` is believed (`SIGILLUM_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks (`10.0.0.0/8, ::1`).
    pub fn parse(list: &str) -> Result<Self, BadProxy> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| BadProxy(item.to_owned()))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` carrying these `X-Forwarded-For` values.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = IpAddr::from_str(hop).map(canonical) else {
                // Garbage from beyond the last trusted hop: stop believing.
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("198.51.100.4"), ["203.0.113.9"]), ip("198.51.100.4"));
        let lb = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(lb.client_ip(ip("198.51.100.4"), ["203.0.113.9"]), ip("198.51.100.4"));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        // spoofed, real client, inner proxy — the peer is the outer proxy.
        assert_eq!(t.client_ip(ip("10.1.1.1"), ["1.2.3.4, 203.0.113.9, 192.0.2.1"]), ip("203.0.113.9"));
        // Several header lines count as one list.
        assert_eq!(t.client_ip(ip("10.1.1.1"), ["1.2.3.4", "203.0.113.9"]), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(t.client_ip(ip("10.1.1.1"), []), ip("10.1.1.1"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(t.client_ip(ip("10.1.1.1"), ["203.0.113.9, nonsense"]), ip("10.1.1.1"));
        // Mapped addresses are their IPv4 selves.
        assert_eq!(t.client_ip(ip("::ffff:10.1.1.1"), ["::ffff:203.0.113.9"]), ip("203.0.113.9"));
    }

    #[test]
    fn bad_lists_are_rejected() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }
}
