-- Hostile: returning a number
return { route = function(conversation, candidates, ctx)
  return 42
end }
