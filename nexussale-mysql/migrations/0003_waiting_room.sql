-- A sale's waiting room (its settings and proof-of-work challenge, as JSON); NULL: none. Kept
-- with the definition so that a stock store rebuilt from the repository keeps asking for passes.
ALTER TABLE sales ADD COLUMN waiting_room TEXT NULL;
