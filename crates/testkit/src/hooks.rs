//! A webhook receiver on loopback: records every request (headers and body) and answers with a
//! chosen status, so tests can check signatures and retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

pub struct HookReceiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Status answered to the next requests (default 200).
    pub status: Arc<Mutex<u16>>,
    /// Counts the requests received, for [`Self::wait_until`] to wake on.
    arrivals: tokio::sync::watch::Sender<usize>,
}

impl HookReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hooks", listener.local_addr().unwrap().port());
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(200u16));
        let arrivals = tokio::sync::watch::Sender::new(0usize);
        let (rec, st, arrived) = (received.clone(), status.clone(), arrivals.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (rec, st, arrived) = (rec.clone(), st.clone(), arrived.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, len) = loop {
                        let Ok(n) = sock.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (at + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let Ok(n) = sock.read(&mut chunk).await else { return };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let body = buf[head_end..(head_end + len).min(buf.len())].to_vec();
                    rec.lock().unwrap().push(Received { headers, body });
                    arrived.send_modify(|n| *n += 1);
                    let code = *st.lock().unwrap();
                    let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { url, received, status, arrivals }
    }

    /// Waits until a request that `matches` has arrived (`true`), or until `deadline` (`false`).
    pub async fn wait_until(&self, matches: impl Fn(&Received) -> bool, deadline: Instant) -> bool {
        let mut arrivals = self.arrivals.subscribe();
        let mut seen = 0;
        loop {
            {
                let received = self.received.lock().unwrap();
                if received[seen..].iter().any(&matches) {
                    return true;
                }
                seen = received.len();
            }
            let arrived = tokio::time::timeout_at(deadline.into(), arrivals.changed()).await;
            if !matches!(arrived, Ok(Ok(()))) {
                return false;
            }
        }
    }

    /// Waits (up to 30 s) until `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "only {} of {n} webhook deliveries arrived", got.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A webhook endpoint that accepts connections, reads what it is sent and never answers: the
/// client waits for its own timeout. Counts the connections it holds at once.
pub struct Tarpit {
    pub url: String,
    open: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tarpit {
    pub async fn start() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hooks", listener.local_addr().unwrap().port());
        let (open, most, accepted) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, m, a) = (open.clone(), most.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let mut sink = [0u8; 8192];
                    // Held until the client gives up and closes.
                    while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, open, most, accepted }
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most connections held at once so far.
    pub fn most_at_once(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}
