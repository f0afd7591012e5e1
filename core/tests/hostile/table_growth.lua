-- Hostile: unbounded table growth (100 KB a step, up to the memory limit)
return { route = function(conversation, candidates, ctx)
  local t = {}
  local i = 0
  while true do i = i + 1; t[i] = string.rep("x", 100000) .. i end
end }
