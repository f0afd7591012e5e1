-- Hostile: compiling code at run time with load
return { route = function(conversation, candidates, ctx)
  return load('return 1')()
end }
