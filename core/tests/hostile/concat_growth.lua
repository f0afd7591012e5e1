-- Hostile: exponential string growth
return { route = function(conversation, candidates, ctx)
  local s = 'x'
  while true do s = s .. s end
end }
