-- Hostile: string.dump
return { route = function(conversation, candidates, ctx)
  return string.dump(function() end)
end }
