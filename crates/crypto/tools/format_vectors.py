#!/usr/bin/env python3
"""Independent implementation of the Sigillum container (FORMAT.md) with pyca/cryptography.

Prints the fixed test vectors of FORMAT.md. The Rust tests check the same bytes, so the format is
pinned by two implementations that share no code.
"""
import hashlib
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 16384


def container(dek, dek_id, salt, envelope_id, kind, version, plaintext):
    header = b"SGLM" + bytes([1, 1]) + dek_id
    ctx = (b"sigillum/v1\x00" + header + envelope_id + bytes([len(kind)]) + kind
           + version.to_bytes(4, "big"))
    info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00" + salt + ctx
    okm = HKDFExpand(hashes.SHA512(), 76, info).derive(dek)
    key, base, commit = okm[:32], okm[32:44], okm[44:]
    out = header + salt + commit
    aead = AESGCM(key)
    chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext) - len(plaintext) % CHUNK, CHUNK)]
    chunks.append(plaintext[len(chunks) * CHUNK:])
    for n, c in enumerate(chunks):
        nonce = bytes(a ^ b for a, b in zip(base, n.to_bytes(12, "big")))
        out += aead.encrypt(nonce, c, None)
    return out


VECTORS = [
    ("empty original", bytes(range(32)), bytes([0xD0] * 16), bytes([0x5A] * 24), bytes([0xE0] * 16), b"original", 1, b""),
    ("short final", bytes(range(32)), bytes([0xD0] * 16), bytes(range(24)), bytes([0xE1] * 16), b"final", 3, b"Sigillum signed this."),
    ("two chunks", bytes(range(32, 64)), bytes([0xD1] * 16), bytes([0x11] * 24), bytes([0xE2] * 16), b"preview-2", 1,
     bytes(i % 251 for i in range(CHUNK + 100))),
]

if __name__ == "__main__":
    for name, dek, dek_id, salt, env, kind, ver, pt in VECTORS:
        ct = container(dek, dek_id, salt, env, kind, ver, pt)
        print(name, len(pt), len(ct), hashlib.sha256(ct).hexdigest())
        if len(ct) < 200:
            print("  ", ct.hex())
