//! Page previews of the document as sent for signing, rendered by a background job after upload
//! (rendering takes time and CPU; the upload answers at once) and stored encrypted under the
//! envelope key like every other blob: kind `preview-large` / `preview-thumbnail`, version = page
//! number. Readers are the sender's organisation and the envelope's signers.

use sigillum_pdf::preview::PreviewSize;

use super::sending::job;
use super::{internal, JobKind, Workflow};
use crate::accounts::Principal;
use crate::envelopes::{EnvelopeError, ORIGINAL};
use crate::ids::EnvelopeId;
use crate::ports::{EnvelopeRecord, RepoError};
use crate::vault::VaultError;

pub(super) fn blob_kind(size: PreviewSize) -> String {
    format!("preview-{}", size.name())
}

impl Workflow {
    /// Queues the previews of a new envelope's document.
    pub async fn schedule_previews(&self, id: EnvelopeId) -> Result<(), EnvelopeError> {
        let j = job(format!("previews:{id}"), JobKind::Previews, serde_json::json!({ "envelope_id": id }), self.now());
        self.enqueue(&[j]).await
    }

    /// The job: renders every page at both sizes and stores what is not stored yet.
    pub(super) async fn render_previews(&self, id: EnvelopeId) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        let pages = serde_json::from_str::<Vec<serde_json::Value>>(&env.pages).map(|p| p.len()).unwrap_or(0) as u32;
        let last = blob_kind(PreviewSize::Thumbnail);
        match self.inner.vault.repository().get_blob(id, &last, pages.max(1)).await {
            Ok(_) => return Ok(()),
            Err(RepoError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let original = match self.inner.vault.read_blob(id, ORIGINAL, 1).await {
            Ok(b) => b,
            // Deleted (shredded) meanwhile: nothing to render.
            Err(VaultError::NotFound | VaultError::Repo(RepoError::NotFound)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let rendered = match self.inner.cpu.run(move || sigillum_pdf::preview::render_pages(&original)).await {
            Ok(Ok(rendered)) => rendered,
            // The renderer refuses this document, and would on every retry: readers are told
            // so instead of "pending" for ever.
            Ok(Err(refused)) => {
                tracing::warn!(envelope = %id, reason = %refused, "page previews cannot be made");
                self.inner.ports.signing.mark_previews_failed(id, &refused.to_string()).await?;
                return Ok(());
            }
            Err(e) => return Err(internal(e)),
        };
        for (i, sizes) in rendered.into_iter().enumerate() {
            let page = i as u32 + 1;
            for (size, png) in sizes {
                let kind = blob_kind(size);
                match self.inner.vault.repository().get_blob(id, &kind, page).await {
                    Ok(_) => continue,
                    Err(RepoError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(png))]);
                match self.inner.vault.put_blob(id, &kind, page, body).await {
                    Ok(_) | Err(VaultError::Repo(RepoError::Conflict(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn read_preview(&self, env: &EnvelopeRecord, page: u32, size: PreviewSize) -> Result<Vec<u8>, EnvelopeError> {
        match self.inner.vault.read_blob(env.id, &blob_kind(size), page).await {
            Ok(png) => Ok(png),
            Err(VaultError::NotFound | VaultError::Repo(RepoError::NotFound)) => match &env.previews_failed {
                Some(reason) => Err(EnvelopeError::PreviewFailed(reason.clone())),
                None => Err(EnvelopeError::PreviewPending),
            },
            Err(e) => Err(e.into()),
        }
    }

    fn check_page(pages_json: &str, page: u32) -> Result<(), EnvelopeError> {
        let count = serde_json::from_str::<Vec<serde_json::Value>>(pages_json).map(|p| p.len()).unwrap_or(0) as u32;
        if page == 0 || page > count {
            return Err(EnvelopeError::NotFound);
        }
        Ok(())
    }

    /// A page preview for a member of the sender's organisation.
    pub async fn page_preview(
        &self,
        p: &Principal,
        id: EnvelopeId,
        page: u32,
        size: PreviewSize,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let env = self.inner.envelopes.authorize(p, id).await?;
        Self::check_page(&env.pages, page)?;
        self.read_preview(&env, page, size).await
    }

    /// A page preview for the holder of a signing link.
    pub async fn signer_page_preview(
        &self,
        token: &str,
        access_code: Option<&str>,
        page: u32,
        size: PreviewSize,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let s = self.session(token, access_code).await?;
        Self::check_page(&s.env.pages, page)?;
        self.read_preview(&s.env, page, size).await
    }
}
