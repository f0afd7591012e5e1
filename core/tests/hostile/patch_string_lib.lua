-- Hostile: patching the string library
return { route = function(conversation, candidates, ctx)
  string.find = function() return 1 end
  return candidates[1].id
end }
