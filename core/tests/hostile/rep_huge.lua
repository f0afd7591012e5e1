-- Hostile: a gigabyte string.rep
return { route = function(conversation, candidates, ctx)
  return string.rep('x', 1e9)
end }
