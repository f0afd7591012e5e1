-- Hostile: coroutine.resume catching the budget error, forever
return { route = function(conversation, candidates, ctx)
  while true do coroutine.resume(coroutine.create(function() while true do end end)) end
end }
