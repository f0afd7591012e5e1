-- Hostile: dofile
return { route = function(conversation, candidates, ctx)
  return dofile('/etc/passwd')
end }
