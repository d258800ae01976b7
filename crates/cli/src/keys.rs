//! `sigillum keys status|rotate|rewrap`: key management from the command line.

use serde_json::json;

use crate::app::App;

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
        rotated.push(json!({ "organisation": o.id, "key_id": k.key_id, "version": k.version }));
    }
    Ok(json!({ "rotated": rotated }))
}

/// Moves every DEK to its organisation's newest KEK version.
pub async fn rewrap(app: &App) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(app.vault.rewrap_all().await?)?)
}
