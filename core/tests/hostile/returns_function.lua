-- Hostile: returning a function
return { route = function(conversation, candidates, ctx)
  return function() end
end }
