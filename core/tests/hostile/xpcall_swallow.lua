-- Hostile: xpcall catching the budget error, forever
return { route = function(conversation, candidates, ctx)
  while true do xpcall(function() while true do end end, function(e) return e end) end
end }
