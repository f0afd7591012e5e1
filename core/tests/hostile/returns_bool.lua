-- Hostile: returning a boolean
return { route = function(conversation, candidates, ctx)
  return true
end }
