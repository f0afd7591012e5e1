-- Hostile: returning a list of tables
return { route = function(conversation, candidates, ctx)
  return { {}, {} }
end }
