-- Files imported by `netledger import` (id: SHA-256 of the content), committed with their rows.
CREATE TABLE imports (
	id          TEXT PRIMARY KEY,
	imported_at INTEGER NOT NULL,
	rows        INTEGER NOT NULL
);
