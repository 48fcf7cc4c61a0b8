-- Certificate renewal (issue 9, item 14): the pinned certificate's notAfter, and during a
-- renewal's overlap the certificate it replaced and until when that one is still accepted.
-- Hosts enrolled before have NULL expiry.

ALTER TABLE hosts
    ADD COLUMN cert_expires_at timestamptz,
    ADD COLUMN previous_fingerprint text,
    ADD COLUMN previous_valid_until timestamptz;
