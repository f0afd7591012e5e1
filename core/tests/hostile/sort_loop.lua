-- Hostile: an infinite loop in a table.sort comparator (called from C)
return { route = function(conversation, candidates, ctx)
  local t = { 3, 2, 1, 5, 4 }
  table.sort(t, function(a, b) while true do end end)
end }
