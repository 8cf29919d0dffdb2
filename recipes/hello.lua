-- 100 questions at once: each llm.chat suspends only its own task.
local questions = {}
for i = 1, 100 do questions[i] = ("In one sentence, what is special about the number %d?"):format(i) end
local answers = task.map(questions, function(q)
  return llm.chat{ model = "weak", prompt = q, max_tokens = 60 }.text
end, { limit = 100 })
for i = 1, 3 do print(questions[i], "->", answers[i]) end
local s = llm.stats()
print(("%d requests, %d answered, %d tokens out"):format(s.requests, s.ok, s.output_tokens))
