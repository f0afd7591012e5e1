-- Hostile: rawset on the string library
return { route = function(conversation, candidates, ctx)
  rawset(string, 'find', function() return 1 end)
  return candidates[1].id
end }
