CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT OR IGNORE INTO items (id, name) VALUES (1, 'apple'), (2, 'pear'), (3, 'plum');
