-- Hostile: mutating the candidates (shared, read-only)
return { route = function(conversation, candidates, ctx)
  candidates[1] = nil
  return 'nobody'
end }
