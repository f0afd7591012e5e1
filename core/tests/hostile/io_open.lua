-- Hostile: reaching io
return { route = function(conversation, candidates, ctx)
  return io.open('/etc/passwd'):read('a')
end }
