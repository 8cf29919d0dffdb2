return { providers = { sim = { kind = "sim" } }, models = { judge = "sim/sim-judge" } }
