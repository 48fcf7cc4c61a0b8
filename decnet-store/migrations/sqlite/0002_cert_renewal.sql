-- Certificate renewal (issue 9, item 14): the pinned certificate's notAfter, and during a
-- renewal's overlap the certificate it replaced and until when that one is still accepted.
-- Hosts enrolled before have NULL expiry.

ALTER TABLE hosts ADD COLUMN cert_expires_at TEXT;
ALTER TABLE hosts ADD COLUMN previous_fingerprint TEXT;
ALTER TABLE hosts ADD COLUMN previous_valid_until TEXT;
