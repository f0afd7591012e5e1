-- Hostile: require walking out of the script folder
return { route = function(conversation, candidates, ctx)
  return require '..etc.passwd'
end }
