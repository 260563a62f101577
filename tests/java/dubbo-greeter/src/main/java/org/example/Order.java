package org.example;

import java.io.Serializable;
import java.util.List;

/** An order: a struct argument (Hessian2 typed object "org.example.Order"). */
public class Order implements Serializable {
    private static final long serialVersionUID = 1L;

    private String item;
    private int quantity;
    private List<String> tags;

    public Order() {}

    public Order(String item, int quantity, List<String> tags) {
        this.item = item;
        this.quantity = quantity;
        this.tags = tags;
    }

    public String getItem() { return item; }
    public void setItem(String item) { this.item = item; }
    public int getQuantity() { return quantity; }
    public void setQuantity(int quantity) { this.quantity = quantity; }
    public List<String> getTags() { return tags; }
    public void setTags(List<String> tags) { this.tags = tags; }

    @Override
    public String toString() {
        return "Order{item=" + item + ", quantity=" + quantity + ", tags=" + tags + "}";
    }
}
