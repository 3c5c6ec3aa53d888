-- Front-Channel Logout 1.0 (issue 16): the URI the signed-out page renders in an iframe for an
-- application without a back channel (at most 2000 characters, checked before it is stored), and
-- whether `iss` and `sid` are added to it.
ALTER TABLE clients ADD COLUMN frontchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN frontchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;
