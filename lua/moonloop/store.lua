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
CREATE TABLE IF NOT EXISTS journal(
  key TEXT PRIMARY KEY, role TEXT, item_id INTEGER, round INTEGER, request TEXT,
  response TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL,
  latency_ms REAL, created TEXT);
]]

function M.open(path)
  local db = sqlite.open(path, { wal = true, busy_timeout_ms = 5000 })
  db:exec(SCHEMA)
  return setmetatable({ db = db, path = path }, M)
end

function M:close()
  self.db:close()
end

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
  self.db:run([[INSERT OR IGNORE INTO recipe_versions(version, parent, path, source, rationale, created)
      VALUES (?, ?, ?, ?, ?, ?)]], v.version, v.parent, v.path, v.source, v.rationale,
    os.date("!%Y-%m-%dT%H:%M:%SZ"))
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
