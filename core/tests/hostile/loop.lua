-- Hostile: a plain infinite loop
return { route = function(conversation, candidates, ctx)
  while true do end
end }
