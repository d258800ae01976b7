//! `sigillum keys status|rotate|rewrap`: key management from the command line.

use serde_json::json;
use sigillum_audit::{Detail, EventKind};
use sigillum_core::{Actor, ClientInfo, NewEvent};

use crate::app::App;

/// The operator at the command line, as an audit actor.
fn operator(command: &str) -> Actor {
    Actor { name: Some(format!("sigillum {command}")), ..Actor::system() }
}

/// KEK versions, how many DEKs each wraps, and which DEKs wait for a rewrap.
pub async fn status(app: &App) -> anyhow::Result<serde_json::Value> {
    let v = &app.vault;
    let keks = v.key_manager().list().await?;
    let deks = v.repository().list_envelope_keys(None).await?;
    let keks: Vec<_> = keks
        .iter()
        .map(|k| {
            let wrapped = deks.iter().filter(|d| d.kek_key_id == k.key_id && d.kek_version == k.version).count();
            json!({ "key_id": k.key_id, "version": k.version, "current": k.current,
                    "created_unix_ms": k.created_unix_ms, "deks_wrapped": wrapped })
        })
        .collect();
    let stale = deks.iter().filter(|d| !v_is_current(&keks, &d.kek_key_id, d.kek_version)).count();
    Ok(json!({
        "backend": v.key_manager().backend(),
        "keks": keks,
        "deks": deks.len(),
        "deks_needing_rewrap": stale,
    }))
}

fn v_is_current(keks: &[serde_json::Value], key_id: &str, version: u32) -> bool {
    keks.iter().any(|k| k["key_id"] == key_id && k["version"] == version && k["current"] == true)
}

/// Rotates the KEK of one organisation, or of every organisation.
pub async fn rotate(app: &App, org: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let v = &app.vault;
    let orgs = match org {
        Some(id) => {
            let id = sigillum_core::OrgId::parse(id).ok_or_else(|| anyhow::anyhow!("not an organisation id: {id}"))?;
            vec![v.repository().get_organisation(id).await?]
        }
        None => v.repository().list_organisations().await?,
    };
    let mut rotated = Vec::new();
    for o in orgs {
        let k = v.key_manager().rotate_kek(&o.id.kek_id()).await?;
        app.audit
            .record(
                NewEvent::new(EventKind::KeyRotated, None, operator("keys rotate"), ClientInfo::default())
                    .detail("key_id", Detail::Text(k.key_id.clone()))
                    .detail("version", Detail::Int(i64::from(k.version))),
            )
            .await?;
        rotated.push(json!({ "organisation": o.id, "key_id": k.key_id, "version": k.version }));
    }
    Ok(json!({ "rotated": rotated }))
}

/// Moves every DEK to its organisation's newest KEK version.
pub async fn rewrap(app: &App) -> anyhow::Result<serde_json::Value> {
    let report = app.vault.rewrap_all().await?;
    app.audit
        .record(
            NewEvent::new(EventKind::KeyUsed, None, operator("keys rewrap"), ClientInfo::default())
                .detail("purpose", Detail::Text("rewrap".into()))
                .detail("rewrapped", Detail::Int(report.rewrapped as i64))
                .detail("examined", Detail::Int(report.examined as i64)),
        )
        .await?;
    Ok(serde_json::to_value(report)?)
}
