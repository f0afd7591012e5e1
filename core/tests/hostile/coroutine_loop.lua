-- Hostile: an infinite loop inside a coroutine, resumed
return { route = function(conversation, candidates, ctx)
  local co = coroutine.create(function() while true do end end)
  coroutine.resume(co)
  return candidates[1].id
end }
