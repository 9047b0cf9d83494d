-- The built-in code interpreter: Python (and JavaScript) run in a bubblewrap sandbox. It is
-- offered only once an admin turns it on and the server has proved the sandbox works.
INSERT INTO plugins (id, owner_id, name, description, icon, category, kind, builtin, created_at, updated_at)
VALUES ('builtin-code', NULL, 'Code interpreter', 'Runs Python (and JavaScript) in a sandbox with no network; files in and out.', 'code', 'tools', 'builtin', 'code_interpreter', 0, 0);
