-- Hostile: a backtracking pattern on a repeated string (seconds inside C)
return { route = function(conversation, candidates, ctx)
  return ('a'):rep(500):find('.-.-.-b')
end }
