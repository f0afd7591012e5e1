-- Hostile: gsub with a catastrophic pattern
return { route = function(conversation, candidates, ctx)
  local s = ('a'):rep(5000)
  return (s:gsub('(.-)(.-)(.-)x', '%1'))
end }
