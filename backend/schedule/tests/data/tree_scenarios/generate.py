# Writes the JSON scenarios of tests/tree_scenarios.rs (run from this directory:
# python3 generate.py). The expected values are derived by hand in each description, not
# computed by the solver.
import json, math
H=4
def group(vehicles, topology, h=H, cap=10_000_000):
    return {"group_id":1,"start_timestep":0,"time_step_s":900,"horizon":h,
            "capacity_w":[cap]*h,"other_load_w":[0]*h,"pv_w":[0]*h,
            "price_micro_eur_per_kwh":[200000]*h,"battery":None,"vehicles":vehicles,"topology":topology}
def ev(i, max_w=22000, wh=100000, accepted=False, arr=0, dep=H):
    return {"id":i,"arrival":arr,"departure":dep,"max_power_w":max_w,"min_power_w":0,
            "energy_requested_wh":wh,"battery_capacity_wh":None,"energy_on_arrival_wh":None,
            "opted_in":True,"accepted":accepted,"efficiency_permille":1000}
def node(i, parent=None, ph=None, w=None, other_ma=None):
    n={"id":i,"phase_limit_ma":ph or [None,None,None]}
    if parent: n["parent"]=parent
    if w is not None: n["limit_w"]=w
    if other_ma: n["other_load_ma"]=other_ma
    return n
def cp(v, nd, phases, car=None, maxa=32, mina=6, wiring="line_to_neutral", volt=230, step=1000):
    c={"vehicle_id":v,"node":nd,"phases":phases,"wiring":wiring,"voltage_v":volt,"unit":"A",
       "min_current_ma":mina*1000,"max_current_ma":maxa*1000,"current_step_ma":step}
    if car: c["car_phases"]=car
    return c
ROT=[["L1","L2","L3"],["L2","L3","L1"],["L3","L1","L2"]]
def dump(name, desc, g, expected):
    json.dump({"description":desc,"mode":"lp","input":g,"expected":expected}, open(name,"w"), indent=1)

# 1. rotated single-phase cars
vs=[ev(f"cp{k}") for k in range(4)]
top={"nodes":[node("cabinet", ph=[32000]*3)],
     "charge_points":[cp(f"cp{k}","cabinet",ROT[k%3],car=1) for k in range(4)]}
dump("rotated_single_phase_cars.json",
 "A three-phase cabinet (32 A per phase) with four single-phase cars on three-phase charge points, "
 "rotated L1, L2, L3, L1 from one point to the next: cp1 (L2) and cp2 (L3) each get the whole 32 A of "
 "their phase, cp0 and cp3 share L1; every phase carries exactly 32 A: 3 x 32 A x 230 V x 1 h = 22.08 kWh.",
 group(vs,top),
 {"status":"optimal","delivered_kwh":22.08,
  "set_points_a":{"cp1":[32,32,32,32],"cp2":[32,32,32,32]},
  "node_peak_a":{"cabinet":[32,32,32]}})

# 2. a phase at its limit while the others have room
vs=[ev("three"), ev("single")]
top={"nodes":[node("cabinet", ph=[24000,63000,63000])],
     "charge_points":[cp("three","cabinet",ROT[0],car=3,maxa=16), cp("single","cabinet",ROT[0],car=1)]}
dump("phase_at_limit.json",
 "L1 is limited to 24 A, L2 and L3 to 63 A. A three-phase car (16 A) and a single-phase car on L1: "
 "the most energy is 16 A on the three-phase car (690 W/A) and the 8 A left on L1 for the single-phase "
 "car; L1 is at its limit, L2 and L3 carry 16 of 63 A. (16 x 690 + 8 x 230) W x 1 h = 12.88 kWh.",
 group(vs,top),
 {"status":"optimal","delivered_kwh":12.88,
  "set_points_a":{"three":[16,16,16,16],"single":[8,8,8,8]},
  "node_peak_a":{"cabinet":[24,16,16]}})

# 3. nested: transformer binds before the cabinets
vs=[ev(f"{c}{k}") for c in "ab" for k in range(2)]
top={"nodes":[node("transformer", ph=[40000]*3),
              node("cab_a", parent="transformer", ph=[32000]*3),
              node("cab_b", parent="transformer", ph=[32000]*3)],
     "charge_points":[cp(f"{c}{k}",f"cab_{c}",ROT[k],car=3,maxa=16) for c in "ab" for k in range(2)]}
dump("nested_transformer_binds.json",
 "A transformer (40 A per phase) over two cabinets (32 A per phase each), two three-phase 16 A cars per "
 "cabinet: the cabinets could carry 32 A each (64 A in all), the transformer binds at 40 A per phase. "
 "40 A x 690 W/A x 1 h = 27.6 kWh.",
 group(vs,top),
 {"status":"optimal","delivered_kwh":27.6,
  "node_peak_a":{"transformer":[40,40,40]}})

# 4. pausing below 6 A
vs=[ev(f"cp{k}") for k in range(4)]
top={"nodes":[node("cabinet", ph=[20000,None,None])],
     "charge_points":[cp(f"cp{k}","cabinet",["L1"]) for k in range(4)]}
dump("pause_below_minimum.json",
 "Four single-phase charge points on a 20 A phase: an equal share would be 5 A, below the 6 A minimum "
 "(IEC 61851). At most three points charge (3 x 6 A = 18 A), at least one pauses; the phase still "
 "carries its whole 20 A in whole amps: 20 A x 230 V x 1 h = 4.6 kWh.",
 group(vs,top),
 {"status":"optimal","delivered_kwh":4.6,
  "node_peak_a":{"cabinet":[20,0,0]},
  "at_most_charging":[3,3,3,3]})

# 5. seed 004: 6.9 kVA contract (30 A), home load, three chargers 6-32 A
home=[3.2,5.0,5.0,16.4,4.3]
h=len(home)
vs=[ev(f"charger{k}",max_w=7400,dep=h) for k in (1,2,3)]
top={"nodes":[node("house", ph=[30000,None,None], other_ma=[[int(round(x*1000)),0,0] for x in home])],
     "charge_points":[cp(f"charger{k}","house",["L1"]) for k in (1,2,3)]}
g=group(vs,top,h=h)
avail=[math.floor(30-x) for x in home]
dump("seed004_contracted_power.json",
 "Seed 004's load balancer: a 6.9 kVA contract (30 A at 230 V), home load 3.2, 5, 5, 16.4, 4.3 A, three "
 "chargers taking whole amps from 6 to 32 A. The chargers get the contracted current less the home load, "
 "in whole amps: 26, 25, 25, 13, 25 A; with 13.6 A left only two chargers can run at 6 A or more, so one "
 "waits (standby). (26+25+25+13+25) A x 230 V x 0.25 h = 6.555 kWh.",
 g,
 {"status":"optimal","delivered_kwh":round(sum(avail)*230*0.25/1000,6),
  "node_load_a":{"house":[[a,0,0] for a in avail]},
  "at_most_charging":[3,3,3,2,3]})
print(avail)

# 6. parking garage: two transformers, panels, 208 V line-to-line EVSEs split unevenly
pairs={"L1-L2":["L1","L2"],"L2-L3":["L2","L3"],"L3-L1":["L3","L1"]}
panels=[("p1","t1",100,{"L1-L2":5,"L2-L3":2,"L3-L1":1}),
        ("p2","t2",225,{"L1-L2":8,"L2-L3":4,"L3-L1":2}),
        ("p3","t2",200,{"L1-L2":3,"L2-L3":7,"L3-L1":2})]
nodes=[node("t1",ph=[125000]*3), node("t2",ph=[416000]*3)]
vs=[];cps=[]
for pid,par,amps,split in panels:
    nodes.append(node(pid,parent=par,ph=[amps*1000]*3))
    for pair,count in split.items():
        for k in range(count):
            vid=f"{pid}-{pair}-{k}"
            vs.append(ev(vid,max_w=7000))
            cps.append(cp(vid,pid,pairs[pair],wiring="line_to_line",volt=208))
top={"nodes":nodes,"charge_points":cps}
json.dump({"description":
 "A parking garage: transformer t1 (45 kVA, 208Y/120 V: 125 A per phase) feeds panel p1 (100 A per phase); "
 "t2 (150 kVA: 416 A per phase) feeds p2 (225 A) and p3 (200 A). EVSEs are 208 V line-to-line, 6-32 A, "
 "split unevenly over the phase pairs. Compared in tests/tree_scenarios.rs with the same site described "
 "by one kW limit per node (kVA, or sqrt(3) x 208 V x A for the panels) and with that limit derated by sqrt(3).",
 "transformer_kva":{"t1":45,"t2":150},
 "mode":"lp","input":group(vs,top),"expected":{"status":"optimal"}},open("garage_two_transformers.json","w"),indent=1)

# 7. an accepted request that rounding would leave short takes a step from best effort
vs=[ev("a",wh=765,accepted=True,dep=1), ev("b",dep=1)]
top={"nodes":[node("cabinet", ph=[20400,None,None])],
     "charge_points":[cp("a","cabinet",["L1"]), cp("b","cabinet",["L1"])]}
dump("accepted_before_best_effort.json",
 "One step, L1 limited to 20.4 A. Vehicle a has an accepted request of 765 Wh (13.3 A for 15 min), "
 "vehicle b charges best effort. The LP gives a 13.3 A and b 7.1 A; floored to whole amps (13 + 7) only "
 "0.4 A are left, so a would miss its guarantee. a takes a step from b: a 14 A, b 6 A.",
 group(vs,top,h=1),
 {"status":"optimal","set_points_a":{"a":[14],"b":[6]},"node_peak_a":{"cabinet":[20,0,0]}})
