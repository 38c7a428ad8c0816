"""What the tests share besides fixtures: specs and policies, homes and their copies, sign-in and
servers. Test modules import helpers from here, never from one another."""
