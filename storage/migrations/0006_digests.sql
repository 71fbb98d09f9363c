-- A subscriber's daily digest: the local hour (ALERT_TIMEZONE) it is sent at; NULL: none.
-- Digests are outbox rows with a negative seq: standalone messages whose text is stored.
ALTER TABLE subscribers ADD COLUMN digest_hour INTEGER CHECK (digest_hour BETWEEN 0 AND 23);
