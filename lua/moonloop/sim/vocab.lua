-- Word lists of the simulated world: what key points and misconceptions are made of, and
-- the words that never count as a topic term or as evidence in a rubric check. Kept
-- apart from the logic so the lists can grow without touching it.
local M = {}

local function set(words)
  local s = {}
  for w in words:gmatch("%S+") do s[w] = true end
  return s
end

-- Key point = "<term> <noun> <verb> <object>", e.g. "compaction watermark bounds write
-- amplification". Misconceptions use their own nouns so that a correct sentence never
-- reads as a wrong one to the judge.
M.KP_NOUNS = {
  "threshold", "invariant", "schedule", "ordering", "checkpoint", "quorum", "backoff",
  "watermark", "penalty", "estimator", "budget", "window", "lease", "batching",
  "admission", "eviction", "snapshot", "barrier", "fencing", "sharding", "prefetch",
  "pipelining", "replication", "throttle",
}
M.KP_VERBS = {
  "bounds", "delays", "amortizes", "limits", "stabilizes", "reorders", "dominates",
  "masks", "inflates", "reduces", "caps", "smooths", "hides", "serializes", "decouples",
  "absorbs",
}
M.KP_OBJECTS = {
  "tail latency", "write amplification", "memory pressure", "gradient variance",
  "recovery time", "false sharing", "read staleness", "peak throughput",
  "convergence speed", "lock contention", "queue depth", "retry storms",
  "cold starts", "space overhead", "commit latency", "cache misses", "divergence risk",
  "fanout cost", "jitter", "startup cost",
}
M.MIS_NOUNS = {
  "configuration", "default", "heuristic", "layer", "component", "setting", "module",
  "parameter", "path", "scheme",
}
M.MIS_CLAIMS = {
  "eliminates %s entirely", "has no effect on %s", "always doubles %s",
  "makes %s irrelevant", "trades nothing for %s", "guarantees zero %s",
}

-- Words that carry no evidence when the judge compares a criterion with an answer:
-- function words, the verbs rubric criteria open with, and rubric bookkeeping.
M.STOP = set([[
a an the and or but nor so yet of to in on at by for from with without into onto over
under about as than then that this these those it its it's is are was were be been being
has have had do does did can could should would may might must will shall not no yes
how what why when where which who whom whose there here also only just very more most
less least much many some any each every all both either neither such same other
another own their they them his her our your we you i me my he she us
explains explain states state identifies identify notes note mentions mention describes
describe correctly clearly claims claim asserts assert says say argues argue shows show
recognizes recognize points point out answer response criterion criteria weight weights
rubric positive negative met points pts
]])

-- Words never taken as topic terms of a source: common English and the vocabulary of
-- recipe instructions (a prompt's own words must not flavour the question).
M.SOURCE_STOP = set([[
about above after again against along already although among another answer answers
around because become becomes before being below between beyond brief build built
cannot careful challenging change changes clear context could create criteria
criterion detail details difficult different during each either enough especially
every example examples explain explains first following format further general given
gives great group having however include includes including instead itself large
later least level little makes making might model models moreover mostly never
number often other others output paper papers particular possible previous problem
problems provide provided question questions rather reason reasons reference
require required requires result results return returns round rounds rubric second
should similar simple since small source sources specific state still strong
student students system systems their there these thing things think third those
though three through together toward under until using usually value values various
weight weights where whether which while whole within without would write writing
written years attempts attempt failed easy never based according describes described
section note notes technical candidate always below above valid quality check
reasoning trade-off trade-offs mechanism mechanisms derive derivation step steps
multi-step paper-specific leaking reveal giving before after instead research
separates solver solvers stronger weaker grading graded angle deeper entirely
earlier rephrase reasons below engineers textbook knowledge outright conclusion
background checkable complete combine consequence
]])

-- Openers: every generated question starts with one, which is how a solver finds the
-- question inside a message whatever labels the driver puts around it. Context and
-- answer templates never use them.
M.OPENERS = {
  "According to the note,", "Based on the source,", "Drawing on the described design,",
  "In the system the note describes,",
}

M.SYSTEM_NOUNS = {
  "pipeline", "service", "scheduler", "storage engine", "training loop", "protocol",
  "runtime", "index",
}

return M
