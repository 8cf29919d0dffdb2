-- Text made valid UTF-8: every byte sequence that is not UTF-8 becomes U+FFFD, the rest is
-- kept as it is. For model output on its way into HTML, JSON lines and terminals.
return function(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local _, bad = utf8.len(s, i)
    if not bad then
      out[#out + 1] = s:sub(i)
      break
    end
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return table.concat(out)
end
