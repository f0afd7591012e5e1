-- Hostile: string.match with a catastrophic pattern, from a helper
local function pick(s)
  return s:match('(.-)(.-)(.-)(.-)x')
end
return { route = function(conversation, candidates, ctx)
  local s = ('a'):rep(3000)
  return pick(s)
end }
