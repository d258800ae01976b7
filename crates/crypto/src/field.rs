//! Field-level encryption of small values (field values, typed names, signature images) stored in
//! database columns. Each value is its own Cobblestone-256 message under the envelope DEK, with a
//! context naming table, column and row, so a value copied into another row or column does not
//! open, and no long-lived key ever takes random 96-bit nonces.

use crate::cobblestone;
use crate::keys::Dek;
use crate::CryptoError;

/// Version byte in front of every sealed field.
pub const FIELD_VERSION: u8 = 1;

/// Where a value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldContext<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
}

impl FieldContext<'_> {
    fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        let parts = [self.table, self.column, self.row_id];
        if parts.iter().any(|p| p.as_bytes().contains(&0) || p.len() > 255) {
            return Err(CryptoError::Invalid("field context"));
        }
        let mut c = b"sigillum/v1/field\x00".to_vec();
        for p in parts {
            c.push(p.len() as u8);
            c.extend_from_slice(p.as_bytes());
        }
        Ok(c)
    }
}

/// Encrypts one value.
pub fn seal_field(dek: &Dek, ctx: &FieldContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![FIELD_VERSION];
    out.extend(cobblestone::encrypt(dek.expose_secret(), &ctx.encode()?, plaintext)?);
    Ok(out)
}

/// Decrypts one value sealed by [`seal_field`] for the same context.
pub fn open_field(dek: &Dek, ctx: &FieldContext<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match sealed.split_first() {
        Some((&FIELD_VERSION, body)) => cobblestone::decrypt(dek.expose_secret(), &ctx.encode()?, body),
        Some(_) => Err(CryptoError::BadHeader("unsupported field version")),
        None => Err(CryptoError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_in_its_own_cell() -> Result<(), CryptoError> {
        let dek = Dek::generate()?;
        let here = FieldContext { table: "field_values", column: "value", row_id: "r1" };
        let sealed = seal_field(&dek, &here, b"Jane Doe")?;
        assert_eq!(open_field(&dek, &here, &sealed)?, b"Jane Doe");
        let other_row = FieldContext { row_id: "r2", ..here.clone() };
        assert_eq!(open_field(&dek, &other_row, &sealed), Err(CryptoError::Commitment));
        let other_col = FieldContext { column: "name", ..here.clone() };
        assert_eq!(open_field(&dek, &other_col, &sealed), Err(CryptoError::Commitment));
        assert!(open_field(&Dek::generate()?, &here, &sealed).is_err());
        Ok(())
    }
}
