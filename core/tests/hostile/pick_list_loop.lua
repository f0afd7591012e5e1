-- Hostile: a host scan of a script's own long list, forever
return { route = function(conversation, candidates, ctx)
  local list = {}
  for i = 1, 1000 do list[i] = candidates[1] end
  while true do sb.pick.longest_idle(list) end
end }
