-- Hostile: an infinite loop in a wrapped coroutine that yields forever
return { route = function(conversation, candidates, ctx)
  local f = coroutine.wrap(function() while true do coroutine.yield() end end)
  while true do f() end
end }
