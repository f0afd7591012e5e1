-- Hostile: raising a table
return { route = function(conversation, candidates, ctx)
  error({ code = 1 })
end }
