-- The run store: run.db (SQLite, WAL) is the source of truth of a run. Items, every round
-- with every role's output, accepted examples, recipe versions and the request journal.
-- The journal makes resume exact: a request whose answer was recorded is never sent
-- again; it is answered from the journal, so a resumed run retraces the same rounds.
local M = {}
M.__index = M

local SCHEMA = [[
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS items(
  id INTEGER PRIMARY KEY, iteration INTEGER, source TEXT, chunk INTEGER, text TEXT,
  status TEXT NOT NULL DEFAULT 'pending', rounds INTEGER, error TEXT, recipe_version INTEGER);
CREATE TABLE IF NOT EXISTS rounds(
  item_id INTEGER, round INTEGER, category TEXT, reason TEXT, accepted INTEGER,
  weak_mean REAL, strong_mean REAL, gap REAL, record TEXT, recipe_version INTEGER,
  PRIMARY KEY(item_id, round));
CREATE TABLE IF NOT EXISTS examples(
  item_id INTEGER PRIMARY KEY, round INTEGER, weak_mean REAL, strong_mean REAL, gap REAL,
  record TEXT, recipe_version INTEGER);
CREATE TABLE IF NOT EXISTS recipe_versions(
  version INTEGER PRIMARY KEY, parent INTEGER, path TEXT, source TEXT, rationale TEXT,
  scores TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS evaluations(
  version INTEGER, generation INTEGER, slot INTEGER, items INTEGER, passed INTEGER,
  pass_rate REAL, gap REAL, created TEXT, PRIMARY KEY(version, generation, slot));
CREATE TABLE IF NOT EXISTS validation_items(
  id INTEGER PRIMARY KEY, source TEXT, chunk INTEGER, text TEXT);
CREATE TABLE IF NOT EXISTS journal(
  key TEXT PRIMARY KEY, role TEXT, item_id INTEGER, round INTEGER, request TEXT,
  response TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL,
  latency_ms REAL, created TEXT);
]]

-- Columns added after the first release; older run.db files get them on open.
local MIGRATIONS = {
  { "recipe_versions", "edit", "TEXT" }, { "recipe_versions", "status", "TEXT" },
  { "recipe_versions", "reason", "TEXT" }, { "recipe_versions", "strategy", "TEXT" },
  { "recipe_versions", "iteration", "INTEGER" }, { "recipe_versions", "generation", "INTEGER" },
  { "recipe_versions", "slot", "INTEGER" }, { "recipe_versions", "strategy_version", "INTEGER" },
}

function M.open(path)
  local db = sqlite.open(path, { wal = true, busy_timeout_ms = 5000 })
  db:exec(SCHEMA)
  for _, m in ipairs(MIGRATIONS) do
    local have = false
    for _, col in ipairs(db:query("PRAGMA table_info(" .. m[1] .. ")")) do
      if col.name == m[2] then have = true end
    end
    if not have then db:exec(("ALTER TABLE %s ADD COLUMN %s %s"):format(m[1], m[2], m[3])) end
  end
  return setmetatable({ db = db, path = path }, M)
end

function M:close()
  if self.db then self.db:close() end
  self.db = nil
end

M.__close = M.close -- `local st <close> = store.open(path)`

function M:get_meta(key)
  local row = self.db:first("SELECT value FROM meta WHERE key = ?", key)
  return row and row.value
end

function M:set_meta(key, value)
  self.db:run("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", key, tostring(value))
end

function M:add_items(items)
  self.db:transaction(function()
    for _, it in ipairs(items) do
      self.db:run("INSERT INTO items(id, iteration, source, chunk, text, status) VALUES (?, ?, ?, ?, ?, 'pending')",
        it.id, it.iteration, it.source, it.chunk, it.text)
    end
  end)
end

function M:items()
  return self.db:query("SELECT id, iteration, source, chunk, text, status, rounds FROM items ORDER BY id")
end

function M:save_round(rec, version)
  self.db:run([[INSERT OR REPLACE INTO rounds(item_id, round, category, reason, accepted,
      weak_mean, strong_mean, gap, record, recipe_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    rec.item, rec.round, rec.category, rec.reason, rec.accepted and 1 or 0, rec.weak_mean,
    rec.strong_mean, rec.gap, json.encode(rec, { sort_keys = true }), version)
end

-- The item's end, and its example if accepted, in one transaction: either both are on
-- disk or neither, so an example is never lost or written twice.
function M:finish_item(item, outcome, example_record, version)
  self.db:transaction(function()
    if example_record then
      local r = outcome.record
      self.db:run([[INSERT OR REPLACE INTO examples(item_id, round, weak_mean, strong_mean, gap,
          record, recipe_version) VALUES (?, ?, ?, ?, ?, ?, ?)]], item.id, outcome.rounds,
        r.weak_mean, r.strong_mean, r.gap, json.encode(example_record, { sort_keys = true }), version)
    end
    self.db:run("UPDATE items SET status = ?, rounds = ?, error = ?, recipe_version = ? WHERE id = ?",
      outcome.status, outcome.rounds, outcome.error, version, item.id)
  end)
end

function M:save_version(v)
  self.db:run([[INSERT OR IGNORE INTO recipe_versions(version, parent, path, source, rationale,
      created, edit, status, reason, strategy, iteration, generation, slot, scores, strategy_version)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]], v.version, v.parent, v.path, v.source,
    v.rationale, os.date("!%Y-%m-%dT%H:%M:%SZ"), v.edit, v.status or "root", v.reason,
    v.strategy, v.iteration, v.generation, v.slot, v.scores and json.encode(v.scores, { sort_keys = true }),
    v.strategy_version)
end

function M:set_version_status(version, status, reason)
  self.db:run("UPDATE recipe_versions SET status = ?, reason = ? WHERE version = ?", status, reason, version)
end

function M:set_version_scores(version, scores)
  self.db:run("UPDATE recipe_versions SET scores = ? WHERE version = ?",
    json.encode(scores, { sort_keys = true }), version)
end

function M:version(v)
  return self.db:first("SELECT * FROM recipe_versions WHERE version = ?", v)
end

function M:version_at(generation, slot)
  return self.db:first("SELECT * FROM recipe_versions WHERE generation = ? AND slot = ?", generation, slot)
end

function M:versions()
  return self.db:query("SELECT * FROM recipe_versions ORDER BY version")
end

function M:next_version()
  local row = self.db:first("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM recipe_versions")
  return row.v
end

-- One evaluation of a version on the validation items; idempotent per (generation, slot),
-- so a generation replayed after a crash does not count twice.
function M:save_evaluation(e)
  self.db:run([[INSERT OR IGNORE INTO evaluations(version, generation, slot, items, passed,
      pass_rate, gap, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], e.version, e.generation, e.slot,
    e.items, e.passed, e.pass_rate, e.gap, os.date("!%Y-%m-%dT%H:%M:%SZ"))
end

function M:evaluation(version, generation, slot)
  return self.db:first("SELECT * FROM evaluations WHERE version = ? AND generation = ? AND slot = ?",
    version, generation, slot)
end

-- The mean over every evaluation of a version; with `generation` (and `slot`), only the
-- evaluations a slot of that generation may know of: earlier generations, the
-- generation's opening evaluations (slot 0), and the slot's own. Concurrent slots and a
-- replay after a crash then decide exactly alike.
function M:score(version, generation, slot)
  local r = self.db:first([[SELECT COUNT(*) AS n, AVG(pass_rate) AS pass_rate, AVG(gap) AS gap
      FROM evaluations WHERE version = ? AND (? IS NULL OR generation < ?
        OR (generation = ? AND (slot = 0 OR slot = ?)))]], version, generation, generation,
    generation, slot or 0)
  if not r or r.n == 0 then return nil end
  return { pass_rate = r.pass_rate, gap = r.gap, evaluations = r.n }
end

function M:add_validation_items(items)
  self.db:transaction(function()
    for _, it in ipairs(items) do
      self.db:run("INSERT OR IGNORE INTO validation_items(id, source, chunk, text) VALUES (?, ?, ?, ?)",
        it.id, it.source, it.chunk, it.text)
    end
  end)
end

function M:validation_items()
  return self.db:query("SELECT id, source, chunk, text FROM validation_items ORDER BY id")
end

function M:journal_get(key)
  local row = self.db:first("SELECT response FROM journal WHERE key = ?", key)
  return row and row.response
end

function M:journal_put(key, tags, request, response, r)
  self.db:run([[INSERT OR IGNORE INTO journal(key, role, item_id, round, request, response,
      input_tokens, output_tokens, cost_usd, latency_ms, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    key, tags.role, tags.item, tags.round, request, response, r.usage and r.usage.input,
    r.usage and r.usage.output, r.cost_usd, r.latency_ms, os.date("!%Y-%m-%dT%H:%M:%SZ"))
end

function M:examples()
  return self.db:query("SELECT item_id, record FROM examples ORDER BY item_id")
end

function M:rejected_rounds()
  return self.db:query([[SELECT item_id, round, category, reason, weak_mean, strong_mean, gap, record
      FROM rounds WHERE accepted = 0 ORDER BY item_id, round]])
end

-- Calls, tokens and cost per role (challenger, weak, judge, ...) from the journal.
function M:by_role()
  return self.db:query([[SELECT role, COUNT(*) AS calls, SUM(input_tokens) AS input,
      SUM(output_tokens) AS output, SUM(cost_usd) AS cost, SUM(cost_usd IS NULL) AS unpriced
      FROM journal GROUP BY role ORDER BY role]])
end

-- The same per iteration (the journal's item ids join the items' iterations).
function M:by_iteration()
  return self.db:query([[SELECT i.iteration AS iteration, COUNT(*) AS calls,
      SUM(j.input_tokens) AS input, SUM(j.output_tokens) AS output, SUM(j.cost_usd) AS cost,
      SUM(j.cost_usd IS NULL) AS unpriced
      FROM journal j JOIN items i ON i.id = j.item_id GROUP BY i.iteration ORDER BY i.iteration]])
end

-- What the analyst reads about one iteration: counts, rounds by outcome, and a sample of
-- categorised failures with their questions.
function M:iteration_stats(iteration, max_failures)
  local t = self.db:first([[SELECT COUNT(*) AS items, SUM(status = 'accepted') AS accepted
      FROM items WHERE iteration = ?]], iteration)
  local cats, rounds = {}, 0
  for _, r in ipairs(self.db:query([[SELECT r.category AS category, COUNT(*) AS n FROM rounds r
      JOIN items i ON i.id = r.item_id WHERE i.iteration = ? GROUP BY r.category]], iteration)) do
    cats[r.category or "?"] = r.n
    rounds = rounds + r.n
  end
  local failures = {}
  for _, r in ipairs(self.db:query([[SELECT r.category AS category, r.reason AS reason, r.record AS record
      FROM rounds r JOIN items i ON i.id = r.item_id WHERE i.iteration = ? AND r.accepted = 0
      ORDER BY r.item_id, r.round LIMIT ?]], iteration, max_failures or 8)) do
    local ok, rec = pcall(json.decode, r.record)
    failures[#failures + 1] = { category = r.category, reason = r.reason,
      question = ok and rec.example and rec.example.question or nil }
  end
  return { items = t.items or 0, accepted = t.accepted or 0, rounds = rounds, categories = cats }, failures
end

function M:totals()
  local t = self.db:first([[SELECT COUNT(*) AS items,
      SUM(status = 'accepted') AS accepted, SUM(status = 'exhausted') AS exhausted,
      SUM(status = 'error') AS errors, SUM(status = 'pending') AS pending FROM items]])
  local e = self.db:first([[SELECT AVG(weak_mean) AS weak, AVG(strong_mean) AS strong, AVG(gap) AS gap,
      AVG(round) AS rounds FROM examples]])
  local rc = self.db:query("SELECT category, COUNT(*) AS n FROM rounds GROUP BY category")
  local j = self.db:first([[SELECT COUNT(*) AS calls, SUM(input_tokens) AS input,
      SUM(output_tokens) AS output, SUM(cost_usd) AS cost, SUM(cost_usd IS NULL) AS unpriced FROM journal]])
  local rounds = self.db:first("SELECT COUNT(*) AS n FROM rounds")
  local cats = {}
  for _, row in ipairs(rc) do cats[row.category or "?"] = row.n end
  return { items = t.items or 0, accepted = t.accepted or 0, exhausted = t.exhausted or 0,
    errors = t.errors or 0, pending = t.pending or 0, weak = e.weak, strong = e.strong,
    gap = e.gap, rounds_per_example = e.rounds, categories = cats, calls = j.calls or 0,
    input_tokens = j.input or 0, output_tokens = j.output or 0, cost = j.cost,
    unpriced = j.unpriced or 0, rounds = rounds.n or 0 }
end

return M
