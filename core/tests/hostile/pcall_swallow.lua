-- Hostile: pcall catching the budget error, forever
return { route = function(conversation, candidates, ctx)
  while true do pcall(function() while true do end end) end
end }
