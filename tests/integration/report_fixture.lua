-- Turns a copy of a simulator run into a fixture for the report: the recipe-evolution
-- columns and a lineage of versions (kept and rejected), items, rounds and examples
-- attributed to them, and hostile text where model output lands in the report.
-- Usage: moonloop run --trusted report_fixture.lua RUN_DIR
local dir = assert(arg[1], "usage: report_fixture.lua RUN_DIR")
local db = sqlite.open(fs.join(dir, "run.db"), { busy_timeout_ms = 5000 })

local HOSTILE_Q = [[<script>alert(1)</script> What does "x" do? ]] .. "]]>" .. [[ & 'y' </div><svg onload=alert(3)>]]
local HOSTILE_REASON = "weak mean too high \255\254 <img src=x onerror=alert(2)> ]]>"

db:transaction(function()
  local have = {}
  for _, r in ipairs(db:query("PRAGMA table_info(recipe_versions)")) do have[r.name] = true end
  for _, c in ipairs({ "edit", "status", "reason", "strategy", "iteration", "generation" }) do
    if not have[c] then
      db:exec(("ALTER TABLE recipe_versions ADD COLUMN %s %s"):format(c,
        (c == "iteration" or c == "generation") and "INTEGER" or "TEXT"))
    end
  end
  db:run([[UPDATE recipe_versions SET status = 'root', generation = 0, iteration = 1,
      scores = ? WHERE version = 1]],
    json.encode({ pass_rate = 0.5, gap = 0.31, weak = 0.47, strong = 0.78, items = 4, evaluations = 4 }))
  -- Four generations: each proposes three edits of the current version; one is kept.
  local v, current = 1, 1
  local kept_at = {}
  for gen = 1, 4 do
    local parent = current
    for k = 1, 3 do
      v = v + 1
      local kept = k == 2
      local pass = kept and (0.5 + 0.1 * gen) or (0.3 + 0.05 * k)
      db:run([[INSERT INTO recipe_versions(version, parent, path, source, rationale, scores, created,
          edit, status, reason, strategy, iteration, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
        v, parent, ("recipes/v%04d.lua"):format(v), "-- recipe v" .. v,
        ("Ask for a <b>multi-step</b> derivation & name the mechanism (edit %d of generation %d) ]]>"):format(k, gen),
        json.encode({ pass_rate = pass, gap = pass * 0.6, weak = 0.4, strong = 0.4 + pass * 0.6,
          items = 4, evaluations = 4 }),
        "2026-01-01T00:00:00Z", "challenger_prompt", kept and "kept" or "rejected",
        (not kept) and ("pass rate %.2f is below the parent's"):format(pass) or nil,
        ({ "rewrite", "mutate", "crossover" })[k], gen + 1, gen)
      if kept then current = v end
    end
    kept_at[gen + 1] = current
  end
  -- Items, rounds and examples of iteration N were made by the version kept before it.
  for _, r in ipairs(db:query("SELECT DISTINCT iteration FROM items")) do
    local ver = kept_at[r.iteration] or 1
    db:run("UPDATE items SET recipe_version = ? WHERE iteration = ?", ver, r.iteration)
    db:run("UPDATE rounds SET recipe_version = ? WHERE item_id IN (SELECT id FROM items WHERE iteration = ?)",
      ver, r.iteration)
    db:run("UPDATE examples SET recipe_version = ? WHERE item_id IN (SELECT id FROM items WHERE iteration = ?)",
      ver, r.iteration)
  end
  -- Hostile model output: the accepted example with the largest gap (shown first), the
  -- latest too-easy round's reason, and that item's source name.
  local ex = db:first("SELECT item_id, round, record FROM examples ORDER BY gap DESC, item_id DESC LIMIT 1")
  local rec = json.decode(ex.record)
  rec.question = HOSTILE_Q
  db:run("UPDATE examples SET record = ? WHERE item_id = ?", json.encode(rec), ex.item_id)
  local rr = db:first("SELECT record FROM rounds WHERE item_id = ? AND round = ?", ex.item_id, ex.round)
  local rrec = json.decode(rr.record)
  rrec.example.question = HOSTILE_Q
  db:run("UPDATE rounds SET record = ? WHERE item_id = ? AND round = ?", json.encode(rrec), ex.item_id, ex.round)
  local te = db:first([[SELECT item_id, round FROM rounds WHERE accepted = 0 AND category = 'too_easy'
      ORDER BY item_id DESC, round DESC LIMIT 1]])
  db:run("UPDATE rounds SET reason = ? WHERE item_id = ? AND round = ?", HOSTILE_REASON, te.item_id, te.round)
  db:run("UPDATE items SET source = ? WHERE id = ?", "evil<script>alert(4)</script>.txt\255", te.item_id)
end)
db:close()
print(("fixture: %d recipe versions in %s"):format(13, dir))
