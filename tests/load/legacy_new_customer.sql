-- A new customer with a vehicle and an appointment next week.
\set n random(1, 2000000000)
\set d random(1, 14)
\set h random(8, 17)
BEGIN;
SELECT coalesce((SELECT id FROM workshops WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1),
                (SELECT id FROM workshops ORDER BY id LIMIT 1)) AS ws, gen_random_uuid() AS cust,
       gen_random_uuid() AS veh, gen_random_uuid() AS appt \gset
INSERT INTO customers (id, workshop_id, name, email, phone, address, city, postal_code, active, marketing_consent,
                       created_at, updated_at)
VALUES (:cust, :ws, 'Anna Lastprobe ' || :n, 'anna.' || :n || '@example.de', '030 ' || :n, 'Hauptstr. ' || (:n % 200),
        'Berlin', '10115', true, NULL, now(), now());
INSERT INTO vehicles (id, customer_id, workshop_id, make, model, year, license_plate, vin, mileage_km, fuel_type,
                      created_at, updated_at)
VALUES (:veh, :cust, :ws, 'Volkswagen', 'Golf', 2018, 'B-LP ' || (:n % 9000 + 1), NULL, :n % 200000, 'Benzin', now(), now());
INSERT INTO appointments (id, workshop_id, customer_id, vehicle_id, lead_id, appointment_date, appointment_time,
                          duration_minutes, status, notes, created_at, updated_at)
VALUES (:appt, :ws, :cust, :veh, NULL, current_date + :d::integer, make_time(:h::integer, 0, 0), 60, 'scheduled', 'Inspektion', now(), now());
\if :journal
INSERT INTO carbot_load.journal (op, tbl, key) VALUES ('insert', 'customers', :cust), ('insert', 'vehicles', :veh),
       ('insert', 'appointments', :appt);
\endif
COMMIT;
