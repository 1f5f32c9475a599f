-- ARGV: ticket.
return reply(ARGV[1])
