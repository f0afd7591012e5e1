-- Hostile: returning the (read-only) candidates table itself
return { route = function(conversation, candidates, ctx)
  return candidates
end }
