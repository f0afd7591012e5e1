-- Hostile: returning a record instead of a list of agent ids
return { route = function(conversation, candidates, ctx)
  return { agent = { 1, 2, 3 }, rank = "x" }
end }
