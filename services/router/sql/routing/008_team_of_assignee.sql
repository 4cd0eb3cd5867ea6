-- A conversation that has an operator is in that operator's team. Every
-- assignment sets the team from its operator (assign.c), and a transfer
-- to a team assigns within it or to nobody; this trigger keeps it true
-- when an operator moves to another team: their open conversations move
-- with them. Visibility ("the team's conversations") is then one column,
-- and the operator API's team list reads one index range instead of
-- probing every operator of the team for what they hold elsewhere.
CREATE FUNCTION routing.operator_team_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE routing.conversations SET team_id = NEW.team_id
     WHERE assignee = NEW.id AND status <> 'resolved' AND team_id IS DISTINCT FROM NEW.team_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER operator_team_moved AFTER UPDATE OF team_id ON routing.operators
    FOR EACH ROW WHEN (NEW.team_id IS DISTINCT FROM OLD.team_id)
    EXECUTE FUNCTION routing.operator_team_moved();

UPDATE routing.conversations c SET team_id = o.team_id
  FROM routing.operators o
 WHERE o.id = c.assignee AND c.status <> 'resolved' AND c.team_id IS DISTINCT FROM o.team_id;
