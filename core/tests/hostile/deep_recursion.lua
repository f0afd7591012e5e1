-- Hostile: unbounded recursion
return { route = function(conversation, candidates, ctx)
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end }
